//! The `custodia` binary: see [`custodia_server::cli`].

use clap::Parser as _;

fn main() {
    let cli = match custodia_server::cli::Cli::try_parse() {
        Ok(c) => c,
        Err(e) if !e.use_stderr() => {
            // --help and --version.
            let _ = e.print();
            return;
        }
        Err(e) => {
            // One clear line naming the argument, and exit code 2.
            let text = e.to_string();
            let line = text
                .lines()
                .next()
                .unwrap_or("invalid arguments")
                .trim_start_matches("error: ");
            eprintln!("custodia: {line} (see `custodia --help`)");
            std::process::exit(2);
        }
    };
    if let Err(f) = custodia_server::cli::run(cli) {
        eprintln!("custodia: {}", f.message);
        std::process::exit(f.code);
    }
}
