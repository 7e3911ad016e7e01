//! How the MySQL client spells its TLS settings (`ssl-mode`, `ssl-ca`, here from the connection URL) and its
//! rules, and mysql_async's options for them; what the settings mean and the messages naming them live in core
//! ([`connector_core::tls`]).

use connector_core::tls::{TlsDialect, TlsMode, TlsSettings};
use mysql_async::SslOpts;

/// The MySQL client's spelling: `--ssl-mode`'s values in any case, with `-` or `_` (`verify-ca`, `VERIFY_CA`),
/// also under the names other clients use; a CA file alone means VERIFY_CA (a CA given is meant to be checked
/// against), and under REQUIRED the CA is not used, as the client does (it warns; so does
/// [`TlsSettings::warn_if_exposed`]).
pub static MYSQL_CLIENT: TlsDialect = TlsDialect {
    mode_keys: &["ssl-mode", "ssl_mode", "sslmode"],
    ca_keys: &["ssl-ca", "ssl_ca", "sslrootcert"],
    mode_names: ["DISABLED", "PREFERRED", "REQUIRED", "VERIFY_CA", "VERIFY_IDENTITY"],
    parse_mode: |text| match text.to_ascii_uppercase().replace('-', "_").as_str() {
        "DISABLED" => Some(TlsMode::Disabled),
        "PREFERRED" => Some(TlsMode::Preferred),
        "REQUIRED" => Some(TlsMode::Required),
        "VERIFY_CA" => Some(TlsMode::VerifyCa),
        "VERIFY_IDENTITY" => Some(TlsMode::VerifyIdentity),
        _ => None,
    },
    ca_checks_chain_when_required: false,
    mode_with_ca_alone: TlsMode::VerifyCa,
    url_form: "mysql://user:password@host:3306",
    enable_tls_on_server: "configure ssl_cert and ssl_key on the server",
};

/// mysql_async's options for the first attempt (`None`: plaintext); PREFERRED's plaintext retry is
/// [`crate::connection::connect`]'s.
pub fn ssl_opts(settings: &TlsSettings) -> Option<SslOpts> {
    let with_ca = |options: SslOpts| match &settings.ca {
        Some(path) => options.with_root_certs(vec![path.clone().into()]).with_disable_built_in_roots(true),
        None => options,
    };
    let unchecked =
        || SslOpts::default().with_danger_accept_invalid_certs(true).with_danger_skip_domain_validation(true);
    match settings.mode {
        TlsMode::Disabled => None,
        TlsMode::Preferred | TlsMode::Required => Some(unchecked()),
        TlsMode::VerifyCa => Some(with_ca(SslOpts::default().with_danger_skip_domain_validation(true))),
        TlsMode::VerifyIdentity => Some(with_ca(SslOpts::default())),
    }
}

#[cfg(test)]
mod tests {
    use connector_core::tls::Checks;

    use super::*;

    #[test]
    fn tls_is_preferred_unless_the_url_says_otherwise() {
        let split = |url: &str| TlsSettings::split_from_url(url, &MYSQL_CLIENT);
        let mode = |url: &str| split(url).map(|(tls, _)| tls.mode).expect("valid");
        assert_eq!(mode("mysql://app@db:3306/shop"), TlsMode::Preferred);
        assert_eq!(mode("mysql://app@db:3306/shop?ssl-mode=disabled"), TlsMode::Disabled);
        assert_eq!(mode("mysql://app@db:3306/shop?ssl_mode=REQUIRED"), TlsMode::Required);
        assert_eq!(mode("mysql://app@db:3306/shop?sslmode=verify-identity"), TlsMode::VerifyIdentity);
        let ca = std::env::current_exe().expect("a file that exists");
        assert_eq!(mode(&format!("mysql://app@db:3306/shop?ssl-ca={}", ca.display())), TlsMode::VerifyCa);
        let (required, _) =
            split(&format!("mysql://app@db/shop?ssl-mode=REQUIRED&ssl-ca={}", ca.display())).expect("ok");
        assert_eq!(required.checks(), Checks::None, "the MySQL client does not check the CA under REQUIRED");
        let error = split("mysql://app@db/shop?ssl-mode=ON").expect_err("unknown mode");
        assert!(error.report().contains("DISABLED, PREFERRED, REQUIRED"), "{}", error.report());
        let (_, rest) = split("mysql://app@db/shop?ssl-mode=REQUIRED&prefer_socket=false").expect("ok");
        assert_eq!(rest, "mysql://app@db/shop?prefer_socket=false");
    }
}
