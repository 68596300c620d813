//! The main and alt stacks of one script evaluation, with SV Node's limits: before Genesis at
//! most 1,000 elements across both stacks; after Genesis a byte budget over both stacks, each
//! element costing its length plus a fixed overhead (SV Node's `LimitedStack`).
//!
//! Invariant: `used` is always the cost of every element held in either stack, and a push that
//! would exceed `max_memory` is refused before the caller allocates the element where possible
//! (see [`ScriptStack::reserve`]), so hostile scripts cannot grow memory without bound.

use super::error::ScriptError;

/// Elements allowed on stack + altstack before Genesis (SV Node `MAX_STACK_ELEMENTS_BEFORE_GENESIS`).
pub const MAX_STACK_ELEMENTS_BEFORE_GENESIS: usize = 1000;
/// Bookkeeping cost charged per element (SV Node `LimitedStack` `ELEMENT_OVERHEAD`).
pub const ELEMENT_OVERHEAD: u64 = 32;

/// A stack element.
pub type Element = Vec<u8>;

/// Main stack and altstack sharing one memory budget.
#[derive(Debug)]
pub struct ScriptStack {
    main: Vec<Element>,
    alt: Vec<Element>,
    used: u64,
    max_memory: u64,
}

#[inline]
fn cost(e: &[u8]) -> u64 {
    e.len() as u64 + ELEMENT_OVERHEAD
}

impl ScriptStack {
    pub fn new(max_memory: u64) -> Self {
        ScriptStack { main: Vec::with_capacity(8), alt: Vec::new(), used: 0, max_memory }
    }

    pub fn len(&self) -> usize {
        self.main.len()
    }

    pub fn is_empty(&self) -> bool {
        self.main.is_empty()
    }

    /// Elements on both stacks.
    pub fn total_len(&self) -> usize {
        self.main.len() + self.alt.len()
    }

    pub fn memory_used(&self) -> u64 {
        self.used
    }

    /// Fails unless `bytes` more (plus one element's overhead) fit in the budget.
    #[inline]
    pub fn reserve(&self, bytes: u64) -> Result<(), ScriptError> {
        match self.used.checked_add(bytes).and_then(|v| v.checked_add(ELEMENT_OVERHEAD)) {
            Some(total) if total <= self.max_memory => Ok(()),
            _ => Err(ScriptError::StackSize),
        }
    }

    #[inline]
    pub fn push(&mut self, e: Element) -> Result<(), ScriptError> {
        self.reserve(e.len() as u64)?;
        self.used += cost(&e);
        self.main.push(e);
        Ok(())
    }

    #[inline]
    pub fn push_slice(&mut self, e: &[u8]) -> Result<(), ScriptError> {
        self.reserve(e.len() as u64)?;
        self.used += cost(e);
        self.main.push(e.to_vec());
        Ok(())
    }

    #[inline]
    pub fn push_bool(&mut self, v: bool) -> Result<(), ScriptError> {
        self.push(if v { vec![1] } else { Vec::new() })
    }

    #[inline]
    pub fn pop(&mut self) -> Result<Element, ScriptError> {
        let e = self.main.pop().ok_or(ScriptError::InvalidStackOperation)?;
        self.used -= cost(&e);
        Ok(e)
    }

    /// Removes the top element and discards it.
    pub fn drop_top(&mut self) -> Result<(), ScriptError> {
        self.pop().map(drop)
    }

    /// The element `depth` below the top (0 = top).
    #[inline]
    pub fn top(&self, depth: usize) -> Result<&Element, ScriptError> {
        let i = self.index(depth)?;
        Ok(&self.main[i])
    }

    /// Mutable access to an element; `f` may change its length, and the budget is re-checked.
    pub fn modify_top<R>(&mut self, depth: usize, f: impl FnOnce(&mut Element) -> R) -> Result<R, ScriptError> {
        let i = self.index(depth)?;
        let before = cost(&self.main[i]);
        let r = f(&mut self.main[i]);
        let after = cost(&self.main[i]);
        self.used = self.used - before + after;
        if self.used > self.max_memory {
            return Err(ScriptError::StackSize);
        }
        Ok(r)
    }

    #[inline]
    fn index(&self, depth: usize) -> Result<usize, ScriptError> {
        self.main.len().checked_sub(depth + 1).ok_or(ScriptError::InvalidStackOperation)
    }

    /// Removes and returns the element `depth` below the top.
    pub fn remove(&mut self, depth: usize) -> Result<Element, ScriptError> {
        let i = self.index(depth)?;
        let e = self.main.remove(i);
        self.used -= cost(&e);
        Ok(e)
    }

    /// Inserts `e` so that it ends up `depth` elements below the top.
    pub fn insert(&mut self, depth: usize, e: Element) -> Result<(), ScriptError> {
        let i = self.main.len().checked_sub(depth).ok_or(ScriptError::InvalidStackOperation)?;
        self.reserve(e.len() as u64)?;
        self.used += cost(&e);
        self.main.insert(i, e);
        Ok(())
    }

    /// Swaps the elements at two depths.
    pub fn swap(&mut self, a: usize, b: usize) -> Result<(), ScriptError> {
        let (i, j) = (self.index(a)?, self.index(b)?);
        self.main.swap(i, j);
        Ok(())
    }

    /// Pushes a copy of the element `depth` below the top.
    pub fn dup(&mut self, depth: usize) -> Result<(), ScriptError> {
        let i = self.index(depth)?;
        self.reserve(self.main[i].len() as u64)?;
        let e = self.main[i].clone();
        self.used += cost(&e);
        self.main.push(e);
        Ok(())
    }

    pub fn to_alt(&mut self) -> Result<(), ScriptError> {
        let e = self.main.pop().ok_or(ScriptError::InvalidStackOperation)?;
        self.alt.push(e);
        Ok(())
    }

    pub fn from_alt(&mut self) -> Result<(), ScriptError> {
        let e = self.alt.pop().ok_or(ScriptError::InvalidAltstackOperation)?;
        self.main.push(e);
        Ok(())
    }

    /// Empties the altstack (each script starts with a fresh one).
    pub fn clear_alt(&mut self) {
        for e in self.alt.drain(..) {
            self.used -= cost(&e);
        }
    }

    /// The main stack, bottom first.
    pub fn elements(&self) -> &[Element] {
        &self.main
    }

    /// A copy of the main stack (P2SH keeps one from before scriptPubKey ran).
    pub fn snapshot(&self) -> Vec<Element> {
        self.main.clone()
    }

    /// Replaces the main stack with `elements` (and an empty altstack).
    pub fn restore(&mut self, elements: Vec<Element>) -> Result<(), ScriptError> {
        self.clear_alt();
        self.main = elements;
        self.used = self.main.iter().map(|e| cost(e)).sum();
        if self.used > self.max_memory {
            return Err(ScriptError::StackSize);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accounts_memory_across_both_stacks() {
        let mut s = ScriptStack::new(100);
        s.push(vec![0; 10]).unwrap();
        s.push(vec![0; 10]).unwrap();
        assert_eq!(s.memory_used(), 84);
        s.to_alt().unwrap();
        assert_eq!(s.memory_used(), 84);
        assert_eq!(s.push(vec![0; 1]), Err(ScriptError::StackSize));
        s.clear_alt();
        assert_eq!(s.memory_used(), 42);
        assert_eq!(s.dup(0), Ok(()));
        assert_eq!(s.dup(5), Err(ScriptError::InvalidStackOperation));
        assert_eq!(s.from_alt(), Err(ScriptError::InvalidAltstackOperation));
    }
}
