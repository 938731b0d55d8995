//! The table of TLS libraries weft knows how to recognise.
//!
//! Each entry says which file names mark a shared library of that kind, which
//! symbols must be defined for a file to count as one, which further symbols
//! are probed when present, and (for look-alikes such as BoringSSL, which
//! exports OpenSSL's names) which symbols tell it apart. Adding a library is
//! adding an entry here plus its probes on the BPF side.

use crate::event::TlsLibrary;

/// How to recognise one TLS library in an ELF file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LibrarySpec {
    pub library: TlsLibrary,
    /// Prefixes of the file name (last path component, as the process sees it)
    /// that mark a shared library of this kind, e.g. `libssl.so` matches
    /// `libssl.so.3` and `libssl.so.1.1`.
    pub file_prefixes: &'static [&'static str],
    /// Prefixes of file names that are never this library even though they
    /// define its symbols (another library's compatibility layer).
    pub excluded_prefixes: &'static [&'static str],
    /// Whether a copy linked into a file with any other name (an executable
    /// such as `node`, or another shared library) is also recognised. Only
    /// safe for libraries whose symbol names are distinctive: NSPR's `PR_Write`
    /// is a generic I/O call, so it is recognised only by file name.
    pub embedded: bool,
    /// Functions that must all be defined in the file.
    pub required: &'static [&'static str],
    /// Functions probed when defined; their absence is normal (older versions).
    pub optional: &'static [&'static str],
    /// When non-empty, at least one of these must be defined too. Used to tell
    /// a library apart from another that exports the same required names.
    pub markers: &'static [&'static str],
}

impl LibrarySpec {
    /// True when `file_name` is one of this library's usual file names.
    pub fn name_matches(&self, file_name: &str) -> bool {
        self.file_prefixes.iter().any(|p| file_name.starts_with(p))
    }

    /// True when a file of this name may be this library: it has one of the
    /// library's names, or the library may be embedded anywhere, and the name
    /// is not excluded.
    pub fn name_allowed(&self, file_name: &str) -> bool {
        (self.embedded || self.name_matches(file_name))
            && !self
                .excluded_prefixes
                .iter()
                .any(|p| file_name.starts_with(p))
    }

    /// Every symbol name this entry looks at, required first.
    pub fn all_symbols(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.required
            .iter()
            .chain(self.optional)
            .chain(self.markers)
            .copied()
    }
}

/// OpenSSL 1.1.x and 3.x (`libssl.so.1.1`, `libssl.so.3`) and copies linked
/// into executables (`node`). Also matches LibreSSL, whose API is the same.
/// GnuTLS's OpenSSL compatibility layer (`libgnutls-openssl.so.27`) defines
/// `SSL_write`/`SSL_read` over its own `SSL` struct and is excluded: its calls
/// reach `gnutls_record_send`/`recv`, which [`GNUTLS`] probes.
pub const OPENSSL: LibrarySpec = LibrarySpec {
    library: TlsLibrary::OpenSsl,
    file_prefixes: &["libssl.so"],
    excluded_prefixes: &["libgnutls-openssl.so"],
    embedded: true,
    required: &["SSL_write", "SSL_read"],
    optional: &[
        "SSL_write_ex",
        "SSL_read_ex",
        "SSL_do_handshake",
        "SSL_free",
        "SSL_get0_alpn_selected",
    ],
    markers: &[],
};

/// BoringSSL exports OpenSSL's names; its GREASE and extension-permutation
/// setters exist in no OpenSSL release. When this entry is not in the list
/// given to the scanner, BoringSSL is reported as [`TlsLibrary::OpenSsl`],
/// which is harmless for `SSL_read`/`SSL_write` probes (same signatures).
/// Stripped copies (Chromium) are located by `boringssl.rs` instead.
pub const BORINGSSL: LibrarySpec = LibrarySpec {
    library: TlsLibrary::BoringSsl,
    excluded_prefixes: &[],
    file_prefixes: &["libssl.so", "libboringssl.so"],
    embedded: true,
    required: &["SSL_write", "SSL_read"],
    optional: &["SSL_do_handshake", "SSL_free", "SSL_get0_alpn_selected"],
    markers: &[
        "SSL_CTX_set_grease_enabled",
        "SSL_CTX_set_permute_extensions",
    ],
};

/// GnuTLS (`libgnutls.so.30`): wget, gnutls-cli, libcurl-gnutls.
pub const GNUTLS: LibrarySpec = LibrarySpec {
    library: TlsLibrary::GnuTls,
    excluded_prefixes: &[],
    file_prefixes: &["libgnutls.so"],
    embedded: true,
    required: &["gnutls_record_send", "gnutls_record_recv"],
    optional: &["gnutls_handshake", "gnutls_deinit"],
    markers: &[],
};

/// NSS: plaintext passes through NSPR's I/O layer (`libnspr4.so`; Firefox
/// folds NSPR into `libnss3.so`). `PR_*` are generic I/O names, so only
/// these file names are considered. Not yet exercised by tests.
pub const NSS: LibrarySpec = LibrarySpec {
    library: TlsLibrary::Nss,
    excluded_prefixes: &[],
    file_prefixes: &["libnspr4.so", "libnss3.so"],
    embedded: false,
    required: &["PR_Write", "PR_Read"],
    optional: &["PR_Send", "PR_Recv"],
    markers: &[],
};

/// wolfSSL (`libwolfssl.so`).
pub const WOLFSSL: LibrarySpec = LibrarySpec {
    library: TlsLibrary::WolfSsl,
    excluded_prefixes: &[],
    file_prefixes: &["libwolfssl.so"],
    embedded: true,
    required: &["wolfSSL_write", "wolfSSL_read"],
    optional: &["wolfSSL_free", "wolfSSL_connect", "wolfSSL_accept"],
    markers: &[],
};

/// Go's `crypto/tls`, linked into every Go program that uses it. Found by
/// `go.rs` (from `.symtab`, or from the pclntab of stripped programs, with
/// every `RET` inside the two functions), never by the ELF symbol scan.
pub const GO: LibrarySpec = LibrarySpec {
    library: TlsLibrary::GoTls,
    file_prefixes: &[],
    excluded_prefixes: &[],
    embedded: true,
    required: &[super::go::GO_TLS_WRITE, super::go::GO_TLS_READ],
    optional: &[],
    markers: &[],
};

/// The libraries weft has probes for today.
pub const DEFAULT_LIBRARIES: &[LibrarySpec] = &[OPENSSL];

/// Every library in the table, look-alikes before the library they imitate
/// (the first matching entry wins).
pub const ALL_LIBRARIES: &[LibrarySpec] = &[BORINGSSL, OPENSSL, GNUTLS, NSS, WOLFSSL, GO];

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests may panic
mod tests {
    use super::*;

    #[test]
    fn lookalikes_come_first() {
        let pos = |l: TlsLibrary| ALL_LIBRARIES.iter().position(|s| s.library == l);
        assert!(pos(TlsLibrary::BoringSsl) < pos(TlsLibrary::OpenSsl));
    }

    #[test]
    fn openssl_file_names() {
        assert!(OPENSSL.name_matches("libssl.so.3"));
        assert!(OPENSSL.name_matches("libssl.so.1.1"));
        // NSS's SSL library is not OpenSSL.
        assert!(!OPENSSL.name_matches("libssl3.so"));
        assert!(OPENSSL.name_allowed("node"));
        assert!(!OPENSSL.name_allowed("libgnutls-openssl.so.27"));
        assert!(!NSS.name_allowed("firefox"));
        assert!(NSS.name_allowed("libnss3.so"));
    }
}
