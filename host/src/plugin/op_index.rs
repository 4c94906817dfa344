//! The operators a plugin instance resolved for the generated bindings (`aten.index`), by
//! index: a call by index looks its operator up in a vector, with no handle to lift or lend.

use std::collections::HashMap;

use crate::engine::aten::Op;
use crate::error::{OpError, OpResult};

/// Every name resolves once, so the table never holds more than the allowed operators.
#[derive(Default)]
pub struct OpIndex {
    ops: Vec<&'static Op>,
    by_name: HashMap<String, u32>,
}

impl OpIndex {
    /// The index of operator `name`, resolving it on first use; the denylist's or libtorch's
    /// refusal otherwise (nothing is added).
    pub fn index(&mut self, name: &str) -> OpResult<u32> {
        if let Some(&i) = self.by_name.get(name) {
            return Ok(i);
        }
        let op = Op::interned(name)?;
        let i = u32::try_from(self.ops.len()).map_err(|_| OpError::new(name, "too many operators"))?;
        self.ops.push(op);
        self.by_name.insert(name.to_string(), i);
        Ok(i)
    }

    /// The operator at `index`, if one was resolved there.
    pub fn get(&self, index: u32) -> Option<&'static Op> {
        self.ops.get(index as usize).copied()
    }
}
