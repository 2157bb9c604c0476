//! `godwit completions`: a shell completion script, generated from the clap definitions.

use clap::CommandFactory;
use godwit_engine::exit;

use crate::session::Failure;

/// Print a completion script for a shell.
#[derive(clap::Args, Debug)]
#[command(after_help = "Examples:
  godwit completions bash > ~/.local/share/bash-completion/completions/godwit
  godwit completions zsh > \"${fpath[1]}/_godwit\"
  godwit completions fish > ~/.config/fish/completions/godwit.fish")]
pub struct CompletionsArgs {
    /// The shell.
    pub shell: clap_complete::Shell,
}

impl CompletionsArgs {
    /// `C` is the whole command line (passed in: `cli.rs` is above the commands).
    pub fn execute<C: CommandFactory>(self) -> Result<i32, Failure> {
        let mut cmd = C::command();
        let mut buf = Vec::new();
        clap_complete::generate(self.shell, &mut cmd, "godwit", &mut buf);
        crate::out::line(String::from_utf8_lossy(&buf).trim_end());
        Ok(exit::OK)
    }
}
