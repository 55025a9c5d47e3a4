//! Who acts in a tool call: over stdio the process identity (configured, or found from git), over
//! HTTP whoever the request's credentials prove. The tools ask here and never decide it themselves.

use std::sync::Arc;

use rmcp::model::Extensions;
use tokio::sync::OnceCell;

use crate::domain::{Actor, Label, Session, ValidationError};
use crate::error::{Error, Result};

/// Reads the authenticated actor from a request's extensions (HTTP: from the `http::request::Parts`
/// rmcp stores there, where the auth layer put it).
pub type RequestActor = dyn Fn(&Extensions) -> Result<Actor> + Send + Sync;

/// Reads the claiming session of a request (HTTP: the credential it presented).
pub type RequestSession = dyn Fn(&Extensions) -> Option<Session> + Send + Sync;

/// Where the actor of a tool call comes from.
#[derive(Clone)]
pub enum ActorSource {
    /// stdio: one identity for the whole process. Label arguments (`created_by`, `updated_by`,
    /// `author`, `deleted_by`) may rename what is recorded, never who `"me"` is.
    Process(Arc<ProcessIdentity>),
    /// HTTP: the identity proven by the request's credentials. Label arguments are ignored, so a
    /// caller cannot record a change under someone else's name.
    ///
    /// The HTTP layer builds it from the `http::request::Parts` rmcp puts in the request context's
    /// extensions, e.g. `ext.get::<Parts>().and_then(|p| p.extensions.get::<Actor>().cloned())`.
    Request(Arc<RequestActor>, Arc<RequestSession>),
}

impl ActorSource {
    /// The process identity from `--user` / `TASK_MCP_USER` (else git's `user.email`, read from git's
    /// files, else the OS user), resolved in the background from now on so that start-up never waits
    /// on it (call it inside the runtime).
    pub fn process(user: Option<String>) -> Self {
        // One session per process: two windows of one person are two holders of claims.
        let session = format!("{:08x}", rand::random::<u32>());
        let identity = Arc::new(ProcessIdentity { user, resolved: OnceCell::new(), session });
        let warm = identity.clone();
        tokio::spawn(async move {
            if let Err(err) = warm.get().await {
                tracing::warn!("tool calls will fail until the identity is fixed: {err}");
            }
        });
        ActorSource::Process(identity)
    }

    /// The identity read from each request (see [`ActorSource::Request`]).
    pub fn from_request(
        read: impl Fn(&Extensions) -> Result<Actor> + Send + Sync + 'static,
        session: impl Fn(&Extensions) -> Option<Session> + Send + Sync + 'static,
    ) -> Self {
        ActorSource::Request(Arc::new(read), Arc::new(session))
    }

    /// The session a claim of this call belongs to: the process over stdio, the credential over
    /// HTTP; `agent` is the client's name from its handshake.
    pub async fn session(&self, extensions: &Extensions, agent: Option<String>) -> Result<Session> {
        match self {
            ActorSource::Process(identity) => {
                let actor = identity.get().await.map_err(Error::Invalid)?;
                let holder = format!("{} (process {} {})", actor.email.as_str(), std::process::id(), identity.session);
                Ok(Session { holder, agent })
            }
            ActorSource::Request(read, session) => {
                let actor = read(extensions)?;
                let mut session =
                    session(extensions).unwrap_or(Session { holder: actor.email.to_string(), agent: None });
                session.agent = agent.or(session.agent);
                Ok(session)
            }
        }
    }

    /// The actor of one call. `label` is what the caller asked to be recorded as; it counts only
    /// over stdio, and `"me"` (or nothing) keeps the identity's own label.
    pub async fn actor(&self, extensions: &Extensions, label: Option<(&str, &str)>) -> Result<Actor> {
        match self {
            ActorSource::Process(identity) => {
                let actor = identity.get().await.map_err(Error::Invalid)?;
                Ok(actor.labelled(parse_label(label)?))
            }
            ActorSource::Request(read, _) => read(extensions),
        }
    }
}

/// A label argument: blank or `"me"` means the identity's own label.
fn parse_label(label: Option<(&str, &str)>) -> Result<Option<Label>> {
    let Some((field, raw)) = label else { return Ok(None) };
    let trimmed = raw.trim();
    if trimmed.is_empty() || trimmed.eq_ignore_ascii_case("me") {
        return Ok(None);
    }
    Ok(Some(Label::parse(field, raw)?))
}

/// The stdio process's identity, resolved once.
pub struct ProcessIdentity {
    user: Option<String>,
    /// This process's session, among the holders of claims.
    session: String,
    resolved: OnceCell<std::result::Result<Actor, ValidationError>>,
}

impl ProcessIdentity {
    async fn get(&self) -> std::result::Result<Actor, ValidationError> {
        self.resolved
            .get_or_init(|| async {
                let user = self.user.clone();
                let resolved = if user.is_some() {
                    // A configured identity is parsed, nothing read: no thread to start.
                    Ok(crate::config::resolve_actor_with_notice(user.as_deref()))
                } else {
                    // git's files are read (or, rarely, `git config` run): off the async thread.
                    tokio::task::spawn_blocking(move || crate::config::resolve_actor_with_notice(user.as_deref())).await
                };
                match resolved {
                    Ok(Ok((actor, notice))) => {
                        // Once per process (the cell is filled once), at start: `process` warms it up.
                        if let Some(notice) = notice {
                            tracing::warn!("{notice}");
                        }
                        Ok(actor)
                    }
                    Ok(Err(Error::Invalid(err))) => Err(err),
                    Ok(Err(other)) => Err(ValidationError::new("TASK_MCP_USER", other.to_string())),
                    Err(join) => Err(ValidationError::new("TASK_MCP_USER", format!("could not be resolved: {join}"))),
                }
            })
            .await
            .clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Email;

    fn ann() -> Actor {
        Actor::new(Email::parse("user", "ann@example.com").unwrap())
    }

    #[tokio::test]
    async fn over_stdio_a_label_renames_the_record_but_not_me() {
        let source = ActorSource::process(Some("ann@example.com".into()));
        let none = Extensions::default();
        assert_eq!(source.actor(&none, None).await.unwrap(), ann());
        assert_eq!(source.actor(&none, Some(("updated_by", "me"))).await.unwrap(), ann());
        assert_eq!(source.actor(&none, Some(("updated_by", "  "))).await.unwrap(), ann());
        let bot = source.actor(&none, Some(("updated_by", "Planner Bot"))).await.unwrap();
        assert_eq!(bot.label.as_str(), "Planner Bot");
        assert_eq!(bot.email.as_str(), "ann@example.com");
        let err = source.actor(&none, Some(("author", "a\0b"))).await.unwrap_err();
        assert!(err.to_string().contains("author"), "{err}");
    }

    #[tokio::test]
    async fn over_http_labels_cannot_change_who_acts() {
        let source = ActorSource::from_request(|_| Ok(ann()), |_| None);
        let actor = source.actor(&Extensions::default(), Some(("updated_by", "boss@example.com"))).await.unwrap();
        assert_eq!(actor, ann());
    }

    #[tokio::test]
    async fn a_bad_identity_setting_names_the_variable() {
        let source = ActorSource::process(Some("not an email".into()));
        let err = source.actor(&Extensions::default(), None).await.unwrap_err();
        assert!(err.to_string().contains("TASK_MCP_USER"), "{err}");
    }
}
