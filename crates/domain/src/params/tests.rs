//! Tests of the parameters module, one file per idea.

mod auto_increment;
mod parse;
mod predefined;
mod resolve;
