fn main() {
    std::process::exit(godwit::cli::main_with(
        godwit::worlds::Worlds::default(),
        std::env::args_os(),
    ));
}
