/// mimalloc instead of the system allocator: a fleet plan spends a fifth of its CPU in
/// malloc/free (perf, 400 simulated clusters: the journal's and the transcript's JSON, Rhai's
/// values), which mimalloc's thread-local free lists make cheaper (docs/fleet.md, "Performance").
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    std::process::exit(godwit::cli::main_with(
        godwit::worlds::Worlds::default(),
        std::env::args_os(),
    ));
}
