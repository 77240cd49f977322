//! The `custodia` binary: see [`custodia_server::cli`].

use clap::Parser as _;

fn main() {
    let cli = custodia_server::cli::Cli::parse();
    if let Err(f) = custodia_server::cli::run(cli) {
        eprintln!("custodia: {}", f.message);
        std::process::exit(f.code);
    }
}
