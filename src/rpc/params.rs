//! Positional RPC parameters with SV Node's type errors (`-3 Expected type string, got number`).
//!
//! bitcoin-cli converts arguments listed in its conversion table to JSON (numbers, booleans) and sends the
//! rest as strings, so getters accept exactly the JSON type SV Node expects for each position.

use serde_json::Value;

use super::RpcError;

/// The `params` array of one request.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Params(Vec<Value>);

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

impl Params {
    pub fn new(values: Vec<Value>) -> Self {
        Self(values)
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Fails with the method's usage text unless `min <= len <= max`.
    pub fn expect_count(&self, min: usize, max: usize) -> Result<(), RpcError> {
        if (min..=max).contains(&self.0.len()) {
            Ok(())
        } else {
            Err(RpcError::Usage)
        }
    }

    /// The value at `i` unless absent or null.
    pub fn get(&self, i: usize) -> Option<&Value> {
        self.0.get(i).filter(|v| !v.is_null())
    }

    pub fn str(&self, i: usize) -> Result<&str, RpcError> {
        match self.get(i) {
            Some(Value::String(s)) => Ok(s),
            Some(v) => Err(RpcError::Type { expected: "string", got: type_name(v) }),
            None => Err(RpcError::Usage),
        }
    }

    pub fn opt_str(&self, i: usize) -> Result<Option<&str>, RpcError> {
        self.get(i).map(|_| self.str(i)).transpose()
    }

    pub fn opt_i64(&self, i: usize) -> Result<Option<i64>, RpcError> {
        match self.get(i) {
            None => Ok(None),
            Some(Value::Number(n)) => {
                n.as_i64().map(Some).ok_or(RpcError::InvalidParameter { message: format!("Invalid integer: {n}") })
            }
            Some(v) => Err(RpcError::Type { expected: "number", got: type_name(v) }),
        }
    }

    pub fn opt_bool(&self, i: usize) -> Result<Option<bool>, RpcError> {
        match self.get(i) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(v) => Err(RpcError::Type { expected: "bool", got: type_name(v) }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn typed_getters() {
        let p = Params::new(vec![json!("a"), json!(5), json!(true), Value::Null]);
        assert_eq!(p.str(0).ok(), Some("a"));
        assert!(matches!(p.str(1), Err(RpcError::Type { expected: "string", got: "number" })));
        assert_eq!(p.opt_i64(1).ok(), Some(Some(5)));
        assert_eq!(p.opt_bool(2).ok(), Some(Some(true)));
        assert_eq!(p.opt_bool(3).ok(), Some(None));
        assert_eq!(p.opt_str(9).ok(), Some(None));
        assert!(matches!(p.str(9), Err(RpcError::Usage)));
        assert!(matches!(p.expect_count(0, 3), Err(RpcError::Usage)));
        assert!(p.expect_count(4, 4).is_ok());
        assert!(matches!(Params::new(vec![json!(1.5)]).opt_i64(0), Err(RpcError::InvalidParameter { .. })));
    }
}
