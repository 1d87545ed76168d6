//! Rebuilds the crate when a migration is added: `sqlx::migrate!` embeds the files it finds,
//! and cargo would otherwise notice only changes to files it already knew.
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
