//! The Okta org URL and the device-trust host, parsed and normalised per the protocol spec §1-2:
//! what the admin types (or the metadata says) becomes one canonical, HTTPS-only origin.

use std::fmt;
use url::{Host, Url};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OrgError {
    #[error("the Okta org URL is empty")]
    Empty,
    #[error("the Okta org URL {0:?} uses plain http://; Okta is only reachable over https://")]
    PlainHttp(String),
    #[error("the Okta org URL {value:?} uses the scheme {scheme:?}; expected https://")]
    Scheme { value: String, scheme: String },
    #[error("the Okta org URL {value:?} is not a URL: {source}")]
    Unparsable {
        value: String,
        #[source]
        source: url::ParseError,
    },
    #[error("the Okta org URL {0:?} has no host")]
    NoHost(String),
    #[error("the Okta org URL {0:?} contains a user name or password; give only the host")]
    UserInfo(String),
    #[error("the Okta org URL {0:?} has a path, query or fragment; give only https://<org host>")]
    NotAnOrigin(String),
    #[error(
        "the Okta org URL {value:?} is directly below a public suffix; Safari's preference for \
         the org's cell would cover every site there ({reason})"
    )]
    Cell {
        value: String,
        reason: crate::dns::HostNameError,
    },
    #[error("the certAuthDomain {0:?} is empty")]
    CertAuthEmpty(String),
    #[error("the certAuthDomain {value:?} is not a host or https URL: {reason}")]
    CertAuthInvalid { value: String, reason: String },
}

/// An Okta org origin: `https://host[:port]`, no path, no trailing slash.
#[derive(Clone, PartialEq, Eq)]
pub struct OrgUrl {
    url: Url,
    text: String,
}

impl OrgUrl {
    /// Parses what an admin configures: `acme.okta.com`, `https://acme.okta.com/`, a custom
    /// domain, with an optional port. Refuses plain http, credentials, paths, queries, fragments.
    pub fn parse(value: &str) -> Result<Self, OrgError> {
        let value = value.trim();
        if value.is_empty() {
            return Err(OrgError::Empty);
        }
        let url = parse_origin(value).map_err(|fault| match fault {
            OriginFault::PlainHttp => OrgError::PlainHttp(value.to_owned()),
            OriginFault::Scheme(scheme) => OrgError::Scheme {
                value: value.to_owned(),
                scheme,
            },
            OriginFault::Unparsable(source) => OrgError::Unparsable {
                value: value.to_owned(),
                source,
            },
            OriginFault::NoHost => OrgError::NoHost(value.to_owned()),
            OriginFault::UserInfo => OrgError::UserInfo(value.to_owned()),
            OriginFault::NotAnOrigin => OrgError::NotAnOrigin(value.to_owned()),
        })?;
        if let Some(cell) = cell_of(&url) {
            crate::dns::host_name(&cell).map_err(|reason| OrgError::Cell {
                value: value.to_owned(),
                reason,
            })?;
        }
        let text = url.as_str().trim_end_matches('/').to_owned();
        Ok(OrgUrl { url, text })
    }

    /// `https://acme.okta.com` (no trailing slash).
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The host alone, without port: `acme.okta.com`.
    pub fn host(&self) -> &str {
        self.url.host_str().unwrap_or_default()
    }

    /// Everything after the first dot of the host (`acme.okta.com` -> `okta.com`); `None` for an
    /// IP address or a host without a dot. [`OrgUrl::parse`] refused an org whose cell would
    /// be a public suffix alone, so Safari's `*.<cell>` never covers a whole top-level domain.
    pub fn cell(&self) -> Option<String> {
        cell_of(&self.url)
    }

    /// The URL of an API path (which may carry a query): `endpoint("/api/x?platform=macos")`.
    pub fn endpoint(&self, path: &str) -> Url {
        join(&self.url, path)
    }

    pub(crate) fn url(&self) -> &Url {
        &self.url
    }
}

impl fmt::Display for OrgUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl fmt::Debug for OrgUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "OrgUrl({})", self.text)
    }
}

fn cell_of(url: &Url) -> Option<String> {
    match url.host() {
        Some(Host::Domain(domain)) => domain
            .split_once('.')
            .map(|(_, rest)| rest.trim_end_matches('.'))
            .filter(|rest| !rest.is_empty())
            .map(str::to_owned),
        _ => None,
    }
}

/// `base` with its path and query replaced by `path` (which may contain `?query`). Infallible,
/// unlike `Url::join`, because only path and query change.
pub(crate) fn join(base: &Url, path: &str) -> Url {
    let mut url = base.clone();
    let (path, query) = match path.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (path, None),
    };
    url.set_path(path);
    url.set_query(query);
    url.set_fragment(None);
    url
}

/// The host on which the device-trust MTLS handshake happens, from the metadata's
/// `certAuthDomain`, which may be a URL or a bare host. Browsers are told to present the
/// certificate to exactly this host, so it must be a DNS host name ([`crate::dns::host_name`]):
/// no port (Chrome's pattern and Safari's preference name a host), no wildcard, never a public
/// suffix alone.
pub fn cert_auth_host(value: &str) -> Result<String, OrgError> {
    let trimmed = value.trim();
    if trimmed.is_empty() || trimmed == "/" {
        return Err(OrgError::CertAuthEmpty(value.to_owned()));
    }
    let invalid = |reason: &str| OrgError::CertAuthInvalid {
        value: value.to_owned(),
        reason: reason.to_owned(),
    };
    let url = parse_origin(trimmed).map_err(|fault| match fault {
        OriginFault::PlainHttp => invalid("plain http:// is not used for device trust"),
        OriginFault::Scheme(_) => invalid("not an https URL"),
        OriginFault::Unparsable(source) => invalid(&source.to_string()),
        OriginFault::NoHost => invalid("no host"),
        OriginFault::UserInfo => invalid("contains a user name or password"),
        OriginFault::NotAnOrigin => invalid("has a path, query or fragment"),
    })?;
    if url.port().is_some() {
        return Err(invalid("has a port; browsers are told the host alone"));
    }
    let host = url.host_str().ok_or_else(|| invalid("no host"))?;
    crate::dns::host_name(host).map_err(|e| invalid(&e.to_string()))
}

enum OriginFault {
    PlainHttp,
    Scheme(String),
    Unparsable(url::ParseError),
    NoHost,
    UserInfo,
    NotAnOrigin,
}

/// Shared rules of the org URL and certAuthDomain: an https origin, a bare host allowed.
fn parse_origin(value: &str) -> Result<Url, OriginFault> {
    let with_scheme = if value.contains("://") {
        value.to_owned()
    } else {
        format!("https://{value}")
    };
    let url = Url::parse(&with_scheme).map_err(OriginFault::Unparsable)?;
    match url.scheme() {
        "https" => {}
        "http" => return Err(OriginFault::PlainHttp),
        other => return Err(OriginFault::Scheme(other.to_owned())),
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(OriginFault::NoHost);
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(OriginFault::UserInfo);
    }
    // `Url` turns "https://h" into "https://h/"; anything beyond that one slash is a path. An
    // empty "?" or "#" still counts: it is not what an origin looks like.
    if url.path() != "/" || url.query().is_some() || url.fragment().is_some() {
        return Err(OriginFault::NotAnOrigin);
    }
    if with_scheme.trim_end_matches('/').ends_with(['?', '#']) {
        return Err(OriginFault::NotAnOrigin);
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn org(s: &str) -> OrgUrl {
        OrgUrl::parse(s).unwrap()
    }

    #[test]
    fn bare_host_gets_https() {
        assert_eq!(org("acme.okta.com").as_str(), "https://acme.okta.com");
        assert_eq!(
            org("  acme.oktapreview.com\n").as_str(),
            "https://acme.oktapreview.com"
        );
    }

    #[test]
    fn trailing_slash_is_dropped_and_case_normalised() {
        assert_eq!(
            org("https://acme.okta.com/").as_str(),
            "https://acme.okta.com"
        );
        assert_eq!(
            org("HTTPS://Acme.Okta.com").as_str(),
            "https://acme.okta.com"
        );
        assert_eq!(
            org("acme.okta-emea.com/").as_str(),
            "https://acme.okta-emea.com"
        );
    }

    #[test]
    fn ports_are_kept_unless_default() {
        assert_eq!(
            org("https://acme.okta.com:443").as_str(),
            "https://acme.okta.com"
        );
        assert_eq!(org("127.0.0.1:8443").as_str(), "https://127.0.0.1:8443");
        assert_eq!(org("127.0.0.1:8443").host(), "127.0.0.1");
    }

    #[test]
    fn plain_http_is_refused_and_says_so() {
        let err = OrgUrl::parse("http://acme.okta.com").unwrap_err();
        assert!(matches!(err, OrgError::PlainHttp(_)));
        assert!(err.to_string().contains("plain http://"), "{err}");
        assert!(matches!(
            OrgUrl::parse("ftp://acme.okta.com"),
            Err(OrgError::Scheme { .. })
        ));
    }

    #[test]
    fn paths_queries_fragments_and_userinfo_are_refused() {
        for bad in [
            "https://acme.okta.com/app",
            "https://acme.okta.com/admin/",
            "https://acme.okta.com?x=1",
            "https://acme.okta.com/?",
            "https://acme.okta.com#frag",
            "acme.okta.com/oauth2/default",
        ] {
            assert!(
                matches!(OrgUrl::parse(bad), Err(OrgError::NotAnOrigin(_))),
                "{bad}"
            );
        }
        for bad in ["https://admin@acme.okta.com", "https://a:b@acme.okta.com"] {
            assert!(
                matches!(OrgUrl::parse(bad), Err(OrgError::UserInfo(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn empty_and_garbage_are_refused() {
        assert_eq!(OrgUrl::parse("  "), Err(OrgError::Empty));
        assert!(matches!(
            OrgUrl::parse("https://"),
            Err(OrgError::Unparsable { .. } | OrgError::NoHost(_))
        ));
        assert!(matches!(
            OrgUrl::parse("acme okta.com"),
            Err(OrgError::Unparsable { .. })
        ));
        assert!(matches!(
            OrgUrl::parse("acme.okta.com:99999"),
            Err(OrgError::Unparsable { .. })
        ));
    }

    #[test]
    fn host_and_cell() {
        let o = org("https://acme.okta.com");
        assert_eq!(o.host(), "acme.okta.com");
        assert_eq!(o.cell().as_deref(), Some("okta.com"));
        assert_eq!(
            org("login.corp.example.com").cell().as_deref(),
            Some("corp.example.com")
        );
        assert_eq!(org("127.0.0.1:8443").cell(), None);
        assert_eq!(org("[::1]:8443").cell(), None);
        assert_eq!(org("localhost:8443").cell(), None);
    }

    #[test]
    fn endpoints_keep_the_origin() {
        let o = org("acme.okta.com:8443");
        assert_eq!(
            o.endpoint("/api/internal/v1/device-trust/metadata?platform=macos")
                .as_str(),
            "https://acme.okta.com:8443/api/internal/v1/device-trust/metadata?platform=macos"
        );
        assert_eq!(
            o.endpoint("/api/internal/device-trust/ca/v1/enroll/macos")
                .as_str(),
            "https://acme.okta.com:8443/api/internal/device-trust/ca/v1/enroll/macos"
        );
        assert_eq!(format!("{o}"), "https://acme.okta.com:8443");
    }

    #[test]
    fn cert_auth_host_keeps_only_the_host() {
        assert_eq!(
            cert_auth_host("https://ok12-devicetrust.okta.com").unwrap(),
            "ok12-devicetrust.okta.com"
        );
        assert_eq!(
            cert_auth_host("https://ok12-devicetrust.okta.com/").unwrap(),
            "ok12-devicetrust.okta.com"
        );
        assert_eq!(
            cert_auth_host("ok12-devicetrust.okta.com").unwrap(),
            "ok12-devicetrust.okta.com"
        );
        assert_eq!(
            cert_auth_host(" OK12-devicetrust.okta.com/ ").unwrap(),
            "ok12-devicetrust.okta.com"
        );
        assert_eq!(
            cert_auth_host("https://dt.example.com:443").unwrap(),
            "dt.example.com"
        );
    }

    #[test]
    fn cert_auth_host_is_a_host_name_alone() {
        for bad in [
            "*",
            "https://*",
            "https://*.okta.com",
            "https://127.0.0.1:9443/",
            "https://dt.example.com:8443",
            "https://com",
            "co.uk",
        ] {
            let err = cert_auth_host(bad).unwrap_err();
            assert!(
                matches!(err, OrgError::CertAuthInvalid { .. }),
                "{bad:?}: {err:?}"
            );
        }
    }

    #[test]
    fn an_org_directly_below_a_public_suffix_is_refused() {
        for bad in ["https://acme.com", "acme.co.uk", "https://acme.github.io"] {
            assert!(
                matches!(OrgUrl::parse(bad), Err(OrgError::Cell { .. })),
                "{bad}"
            );
        }
        assert_eq!(
            org("login.acme.co.uk").cell().as_deref(),
            Some("acme.co.uk")
        );
    }

    #[test]
    fn cert_auth_host_rejects_empty_and_garbage() {
        for bad in ["", "  ", "/"] {
            assert!(
                matches!(cert_auth_host(bad), Err(OrgError::CertAuthEmpty(_))),
                "{bad:?}"
            );
        }
        for bad in [
            "https://",
            "not a host",
            "ftp://dt.okta.com",
            "http://dt.okta.com",
            "https://dt.okta.com/path",
            "https://dt.okta.com?x",
            "https://u@dt.okta.com",
            "{\"x\":1}",
        ] {
            let err = cert_auth_host(bad).unwrap_err();
            assert!(
                matches!(err, OrgError::CertAuthInvalid { .. }),
                "{bad:?}: {err:?}"
            );
            assert!(err.to_string().starts_with("the certAuthDomain"), "{err}");
        }
    }
}
