//! Lab 9 walkthrough (written below).
use crate::error::Result;
use crate::walkthrough::Walk;
pub fn walk(_w: &mut Walk) -> Result<()> {
    Ok(())
}
