//! `raftq auth new-token`: a random bearer token for a user, and the line of
//! the auth file that lets it in (the file keeps only its SHA-256). Offline.

use clap::Subcommand;
use raftq_cmdline::outln;
use serde_json::json;

#[derive(Debug, Subcommand)]
pub enum AuthCommand {
    /// Print a new random token and its token_sha256 for the auth file.
    #[command(name = "new-token")]
    NewToken {
        /// The user the token is for (printed in the auth-file snippet).
        #[arg(long)]
        user: String,
    },
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn run(command: &AuthCommand, json: bool) -> anyhow::Result<()> {
    match command {
        AuthCommand::NewToken { user } => {
            let secret: [u8; 32] = rand::random();
            let token = format!("rq_{}", hex(&secret));
            let digest =
                hex(ring::digest::digest(&ring::digest::SHA256, token.as_bytes()).as_ref());
            if json {
                outln!(
                    "{}",
                    json!({ "user": user, "token": token, "token_sha256": digest })
                )?;
            } else {
                outln!("token (give it to {user}; it is shown only now): {token}")?;
                outln!(
                    "auth file entry:\n[[user]]\nname = \"{user}\"\ntoken_sha256 = \"{digest}\""
                )?;
            }
            Ok(())
        }
    }
}
