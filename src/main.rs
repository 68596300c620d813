//! The `bsv-relay` binary: parses options, sets up logging and runs the node.

fn main() -> anyhow::Result<()> {
    println!("bsv-relay {}", env!("CARGO_PKG_VERSION"));
    Ok(())
}
