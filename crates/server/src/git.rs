//! The engine's [`GitRemote`] on the git CLI of the executor crate (`runnel_executor::git`),
//! with the operator's network policy (S5).

use runnel_engine::{BoxFuture, GitCredential, GitRemote, RemoteRef};
use runnel_executor::git::{self, GitCli};

/// Adapts [`GitCli`] to the engine's trait (neither crate knows the other).
pub(crate) struct CliRemote(pub(crate) GitCli);

impl GitRemote for CliRemote {
    fn check_url<'a>(&'a self, url: &'a str) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move { self.0.check_url(url).await.map_err(|err| err.to_string()) })
    }

    fn ls_remote<'a>(
        &'a self,
        url: &'a str,
        credential: Option<&'a GitCredential>,
        patterns: &'a [String],
    ) -> BoxFuture<'a, Result<Vec<RemoteRef>, String>> {
        Box::pin(async move {
            let credential = credential.map(|credential| match credential {
                GitCredential::Token { username, token } => git::GitCredential::Token {
                    username: username.clone(),
                    token: token.clone(),
                },
                GitCredential::SshKey {
                    private_key,
                    known_hosts,
                } => git::GitCredential::SshKey {
                    private_key: private_key.clone(),
                    known_hosts: known_hosts.clone(),
                },
            });
            let refs = self
                .0
                .ls_remote(url, credential.as_ref(), patterns)
                .await
                .map_err(|err| err.to_string())?;
            Ok(refs
                .into_iter()
                .map(|found| RemoteRef {
                    name: found.name,
                    oid: found.oid,
                    symref_target: found.symref_target,
                })
                .collect())
        })
    }
}
