//! The access layer: in front of every gRPC service, it identifies the
//! caller (verified client certificate, bearer JWT), checks the policy's
//! allowlist and the caller's rate limit, and refuses the call before its
//! message is even read, so a refused call never reaches Graph. Admitted
//! calls carry an [`Admitted`] in their extensions for the audit trail.

use super::identity::{Identity, PeerInfo};
use super::jwt::{bearer_token, JwtVerifier};
use super::policy::{Method, Policy};
use crate::audit;
use crate::metrics::Metrics;
use crate::status::denial_status;
use http::{Request, Response};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::time::Instant;
use tonic::body::Body;
use tracing::Instrument;

/// The caller a call was admitted as.
#[derive(Debug, Clone)]
pub struct Admitted {
    /// The policy's name for the caller, or `anonymous` without a policy
    /// (or on a public route).
    pub caller: Arc<str>,
    /// How the caller proved who it is: `mtls`, `jwt` or `none`.
    pub via: &'static str,
    /// The caller's share of the Graph budget (the policy's `weight`).
    pub weight: u32,
}

impl Admitted {
    fn anonymous() -> Self {
        Self {
            caller: Arc::from("anonymous"),
            via: "none",
            weight: 1,
        }
    }
}

/// Why a call was refused. The status table in [`crate::status`] maps each
/// to its gRPC code and details.
#[derive(Debug, Clone, PartialEq)]
pub enum Denial {
    /// No client certificate and no bearer token.
    NoCredentials,
    /// A bearer token was sent but the policy accepts none.
    TokensNotAccepted,
    /// The bearer token failed verification (`reason` from the verifier).
    BadToken {
        reason: &'static str,
        message: String,
    },
    /// Valid credentials, but the policy names no such caller.
    UnknownCaller { identities: Vec<String> },
    /// The caller may not call this RPC.
    NotAllowed { caller: Arc<str>, rpc: String },
    /// The caller is over its rate limit.
    RateLimited {
        caller: Arc<str>,
        retry_after: Duration,
    },
}

impl Denial {
    /// The `google.rpc.ErrorInfo` reason, also the metric label.
    pub fn reason(&self) -> &'static str {
        match self {
            Denial::NoCredentials => "NO_CREDENTIALS",
            Denial::TokensNotAccepted => "TOKENS_NOT_ACCEPTED",
            Denial::BadToken { reason, .. } => reason,
            Denial::UnknownCaller { .. } => "CALLER_UNKNOWN",
            Denial::NotAllowed { .. } => "RPC_NOT_ALLOWED",
            Denial::RateLimited { .. } => "RATE_LIMITED",
        }
    }
}

/// What a request path names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    Task(Method),
    Health,
    Reflection,
    /// Anything else: tonic answers UNIMPLEMENTED, once the caller is known.
    Other,
}

fn route(path: &str) -> Route {
    if let Some(method) = Method::from_path(path) {
        return Route::Task(method);
    }
    if path.starts_with("/grpc.health.v1.Health/") {
        Route::Health
    } else if path.starts_with("/grpc.reflection.v1.ServerReflection/")
        || path.starts_with("/grpc.reflection.v1alpha.ServerReflection/")
    {
        Route::Reflection
    } else {
        Route::Other
    }
}

/// What the decision rests on, taken from the request before any waiting.
pub struct CallFacts {
    route: Route,
    authorization: Option<http::HeaderValue>,
    peer: Option<PeerInfo>,
}

impl CallFacts {
    pub fn of<B>(req: &Request<B>) -> Self {
        Self {
            route: route(req.uri().path()),
            // Marked sensitive: a Debug of it prints `Sensitive`, never the token.
            authorization: req.headers().get(http::header::AUTHORIZATION).map(|v| {
                let mut v = v.clone();
                v.set_sensitive(true);
                v
            }),
            peer: req.extensions().get::<PeerInfo>().cloned(),
        }
    }
}

/// The policy and the means to check it.
pub struct Access {
    policy: Option<Arc<Policy>>,
    jwt: Option<JwtVerifier>,
    metrics: Arc<Metrics>,
}

impl Access {
    /// `policy: None` admits everyone (the explicit open mode).
    pub fn new(
        policy: Option<Arc<Policy>>,
        jwt: Option<JwtVerifier>,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            policy,
            jwt,
            metrics,
        }
    }

    /// Decides on one call from its path, headers and connection.
    pub async fn admit(&self, call: CallFacts) -> Result<Admitted, Denial> {
        let Some(policy) = &self.policy else {
            return Ok(Admitted::anonymous());
        };
        let route = call.route;
        match route {
            Route::Health if policy.public_health => return Ok(Admitted::anonymous()),
            Route::Reflection if policy.public_reflection => return Ok(Admitted::anonymous()),
            _ => {}
        }
        let mut identities: Vec<Identity> = Vec::new();
        let mut via = "mtls";
        if let Some(value) = &call.authorization {
            let Some(jwt) = &self.jwt else {
                return Err(Denial::TokensNotAccepted);
            };
            let token =
                value
                    .to_str()
                    .ok()
                    .and_then(bearer_token)
                    .ok_or_else(|| Denial::BadToken {
                        reason: "TOKEN_MALFORMED",
                        message: "the authorization metadata is not `Bearer <token>`".into(),
                    })?;
            let verified = jwt.verify(token).await.map_err(|e| Denial::BadToken {
                reason: e.reason(),
                message: e.to_string(),
            })?;
            identities.push(Identity::Jwt(verified.subject));
            via = "jwt";
        }
        if let Some(names) = call.peer.as_ref().and_then(|p| p.certificate.as_ref()) {
            identities.extend(names.iter().cloned());
        }
        if identities.is_empty() {
            return Err(Denial::NoCredentials);
        }
        let Some(caller) = policy.caller(&identities) else {
            return Err(Denial::UnknownCaller {
                identities: identities.iter().map(ToString::to_string).collect(),
            });
        };
        if let Route::Task(method) = route {
            if !caller.may_call(method) {
                return Err(Denial::NotAllowed {
                    caller: caller.name.clone(),
                    rpc: method.name().to_owned(),
                });
            }
        }
        if let Some(bucket) = caller.bucket() {
            bucket
                .take(Instant::now())
                .map_err(|retry_after| Denial::RateLimited {
                    caller: caller.name.clone(),
                    retry_after,
                })?;
        }
        Ok(Admitted {
            caller: caller.name.clone(),
            via,
            weight: caller.weight,
        })
    }

    fn refused(&self, path: &str, peer: Option<&PeerInfo>, denial: &Denial) {
        self.metrics.access_denied(denial.reason());
        let peer = peer
            .and_then(|p| p.remote)
            .map(|a| a.to_string())
            .unwrap_or_default();
        tracing::info!(path, peer, reason = denial.reason(), "call refused");
        if let Route::Task(method) = route(path) {
            if !method.is_mutating() {
                return;
            }
            let caller = match denial {
                Denial::NotAllowed { caller, .. } | Denial::RateLimited { caller, .. } => {
                    caller.to_string()
                }
                _ => String::new(),
            };
            audit::refused(method.name(), &caller, &peer, denial.reason());
        }
    }
}

/// The tower layer for tonic's server builder.
#[derive(Clone)]
pub struct AccessLayer(pub Arc<Access>);

impl<S> tower::Layer<S> for AccessLayer {
    type Service = AccessService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AccessService {
            inner,
            access: self.0.clone(),
        }
    }
}

#[derive(Clone)]
pub struct AccessService<S> {
    inner: S,
    access: Arc<Access>,
}

type BoxFuture<T, E> = Pin<Box<dyn Future<Output = Result<T, E>> + Send>>;

impl<S, B> tower::Service<Request<B>> for AccessService<S>
where
    S: tower::Service<Request<B>, Response = Response<Body>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = BoxFuture<Response<Body>, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        // The clone that was driven to readiness serves this call.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let access = self.access.clone();
        let facts = CallFacts::of(&req);
        // With traces exported, a task RPC's server span opens here, so the
        // caller check is in it (the handler records the rest).
        let span = match facts.route {
            Route::Task(method) if crate::telemetry::otel::on() => {
                Some(crate::service::server_span(
                    method.name(),
                    crate::telemetry::otel::extract_headers(req.headers()),
                ))
            }
            _ => None,
        };
        Box::pin(async move {
            let admit = access.admit(facts);
            let admitted = match &span {
                Some(server) => {
                    admit
                        .instrument(server.in_scope(|| tracing::debug_span!("access")))
                        .await
                }
                None => admit.await,
            };
            match admitted {
                Ok(admitted) => {
                    req.extensions_mut().insert(admitted);
                    if let Some(server) = span {
                        req.extensions_mut()
                            .insert(crate::service::ServerSpan(server));
                    }
                    inner.call(req).await
                }
                Err(denial) => {
                    access.refused(
                        req.uri().path(),
                        req.extensions().get::<PeerInfo>(),
                        &denial,
                    );
                    let status = denial_status(&denial);
                    if let Some(server) = &span {
                        crate::service::record_code(server, status.code());
                    }
                    Ok(status.into_http())
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_name_their_routes() {
        assert_eq!(
            route(
                "/graphgateway.v1.SecurityConfigurationTaskService/UpdateSecurityConfigurationTask"
            ),
            Route::Task(Method::Update)
        );
        assert_eq!(
            route("/graphgateway.v1.SecurityConfigurationTaskService/DeleteEverything"),
            Route::Other
        );
        assert_eq!(route("/grpc.health.v1.Health/Check"), Route::Health);
        assert_eq!(
            route("/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo"),
            Route::Reflection
        );
        assert_eq!(route("/other.Service/Method"), Route::Other);
    }
}
