//! How libpq spells its TLS settings in the URL (`sslmode`, `sslrootcert`) and its rules; what they mean and the
//! messages naming them live in core ([`connector_core::tls`]). The SQL connections ([`crate::connection`]) and
//! the replication connection ([`crate::config::PostgresConfig::replication`]) apply them alike.

use connector_core::tls::{TlsDialect, TlsMode};

/// libpq's spelling: lower-case modes, `allow` read as `disable` (it only retries with TLS after a plaintext
/// refusal); `require` and `prefer` with a root certificate check the chain, as libpq does for compatibility
/// with versions before `verify-ca`; a root certificate alone leaves the mode at `prefer`.
pub static LIBPQ: TlsDialect = TlsDialect {
    mode_keys: &["sslmode"],
    ca_keys: &["sslrootcert"],
    mode_names: ["disable", "prefer", "require", "verify-ca", "verify-full"],
    parse_mode: |text| match text {
        "disable" | "allow" => Some(TlsMode::Disabled),
        "prefer" => Some(TlsMode::Preferred),
        "require" => Some(TlsMode::Required),
        "verify-ca" => Some(TlsMode::VerifyCa),
        "verify-full" => Some(TlsMode::VerifyIdentity),
        _ => None,
    },
    ca_checks_chain_when_required: true,
    mode_with_ca_alone: TlsMode::Preferred,
    url_form: "postgres://user:password@host:5432/database",
    enable_tls_on_server: "enable ssl on the server",
};

#[cfg(test)]
mod tests {
    use connector_core::tls::{Checks, TlsSettings};

    use super::*;

    #[test]
    fn libpq_modes_and_root_certificate_rules() {
        let settings = |url: &str| TlsSettings::split_from_url(url, &LIBPQ).map(|(tls, _)| tls).expect("valid");
        assert_eq!(settings("postgres://app@db/shop").mode, TlsMode::Preferred);
        assert_eq!(settings("postgres://app@db/shop?sslmode=allow").mode, TlsMode::Disabled);
        assert_eq!(settings("postgres://app@db/shop?sslmode=verify-full").checks(), Checks::ChainAndName);
        let root = std::env::current_exe().expect("a file that exists");
        let with_root = settings(&format!("postgres://app@db/shop?sslmode=require&sslrootcert={}", root.display()));
        assert_eq!(with_root.checks(), Checks::Chain);
        let error =
            TlsSettings::split_from_url("postgres://app@db/shop?sslmode=VERIFY-FULL", &LIBPQ).expect_err("case");
        assert!(error.report().contains("sslmode `VERIFY-FULL` is not one of disable, prefer"), "{}", error.report());
    }
}
