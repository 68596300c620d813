//! Chain parameters and, later, the header tree and UTXO set.
