//! Which InfluxDB database a line goes to, and which tenant ids can name one.
//!
//! InfluxDB 1.6 refuses (`invalid name`) a database name that contains `/`,
//! `\` or a character Go's `unicode.IsPrint` rejects (control characters,
//! spaces other than U+0020, format characters, unassigned code points…),
//! and (`name too long`) one over 255 bytes. `unicode.IsPrint` accepts
//! exactly the characters Python's `str.isprintable()` accepts (letters,
//! marks, numbers, punctuation, symbols and the ASCII space), so the same
//! table decides (`pyunicode`, Unicode 14). InfluxDB builds with an older Go
//! know fewer characters: a name with a character assigned since is refused
//! by them when the database is created, and the writer dead-letters its
//! lines (docs/influxdb.md).

use std::borrow::Cow;

use thiserror::Error;

use super::pyunicode;

/// The longest database name InfluxDB 1.x accepts, in bytes.
pub const MAX_DATABASE_NAME_LEN: usize = 255;

/// The database a line belongs in, as cheap to compare as possible.
///
/// In the default mode every line goes to the shared `database_name`; with
/// `db_per_tenant` it goes to `<database_name>_<tenant>`. A consumer can key
/// its per-database buffers by the tenant (`&str`) and only build the
/// database name ([`super::Transformer::database`]) once per buffer.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Target<'p> {
    /// The shared database (`[influxdb] database_name`).
    Shared,
    /// The tenant's own database (`db_per_tenant = true`), borrowed from the
    /// message when possible.
    Tenant(Cow<'p, str>),
}

impl Target<'_> {
    /// A copy that owns its tenant text, for keeping beyond the payload.
    pub fn into_owned(self) -> Target<'static> {
        match self {
            Target::Shared => Target::Shared,
            Target::Tenant(tenant) => Target::Tenant(Cow::Owned(tenant.into_owned())),
        }
    }
}

/// Why a tenant id cannot be part of a database name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum TenantNameError {
    /// The database name would be longer than InfluxDB allows.
    #[error("the database name would be {0} bytes, over InfluxDB's {MAX_DATABASE_NAME_LEN}")]
    TooLong(usize),
    /// A character InfluxDB refuses (or that we cannot vouch for).
    #[error("character {0:?} is not allowed in an InfluxDB database name")]
    Character(char),
    /// A JSON array or object, which the reference cannot use as the key of
    /// its per-tenant batches (it drops such messages).
    #[error("a JSON array or object is not a tenant id")]
    Unhashable,
}

/// Checks that `<database_name>_<tenant>` is a name InfluxDB 1.6 accepts.
pub(crate) fn check_tenant(database_name: &str, tenant: &str) -> Result<(), TenantNameError> {
    let len = database_name.len() + 1 + tenant.len();
    if len > MAX_DATABASE_NAME_LEN {
        return Err(TenantNameError::TooLong(len));
    }
    // Keystone project ids are hex: settle the usual case with a byte scan.
    if tenant
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Ok(());
    }
    match tenant.chars().find(|&c| !allowed_in_database_name(c)) {
        Some(c) => Err(TenantNameError::Character(c)),
        None => Ok(()),
    }
}

fn allowed_in_database_name(c: char) -> bool {
    c != '/' && c != '\\' && pyunicode::is_printable(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenant_rules() {
        for ok in [
            "t1",
            "0123456789abcdef0123456789abcdef",
            "tenant with space,comma=eq",
            "a.b",
            "a\"b'c",
            "ünï",
            "名前",
            "",
            "😀",
            "€–\u{301}",
        ] {
            assert_eq!(check_tenant("mon", ok), Ok(()), "{ok:?}");
        }
        assert_eq!(
            check_tenant("mon", "a/b"),
            Err(TenantNameError::Character('/'))
        );
        assert_eq!(
            check_tenant("mon", "a\\b"),
            Err(TenantNameError::Character('\\'))
        );
        assert_eq!(
            check_tenant("mon", "a\tb"),
            Err(TenantNameError::Character('\t'))
        );
        assert_eq!(
            check_tenant("mon", "a\nb"),
            Err(TenantNameError::Character('\n'))
        );
        assert_eq!(
            check_tenant("mon", "a\u{a0}b"),
            Err(TenantNameError::Character('\u{a0}'))
        );
        assert_eq!(
            check_tenant("mon", "a\u{200b}b"),
            Err(TenantNameError::Character('\u{200b}'))
        );
        assert_eq!(
            check_tenant("mon", "a\u{378}b"),
            Err(TenantNameError::Character('\u{378}'))
        );
        assert_eq!(check_tenant("mon", &"x".repeat(251)), Ok(()));
        assert_eq!(
            check_tenant("mon", &"x".repeat(252)),
            Err(TenantNameError::TooLong(256))
        );
    }
}
