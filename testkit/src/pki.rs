//! A certificate authority for TLS tests (rcgen): a CA and the leaf certificates it issues
//! for `localhost` and `127.0.0.1`, written as PEM files a process is pointed at with
//! TLS_CERT_FILE, TLS_KEY_FILE and TLS_CA_FILE.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};

/// A test CA; [`TestCa::issue`] makes server certificates it signs.
pub struct TestCa {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

/// A leaf certificate and its key, as PEM.
pub struct Leaf {
    /// The certificate (the leaf alone).
    pub cert_pem: String,
    /// Its private key (PKCS#8).
    pub key_pem: String,
    /// The certificate's DER, to compare with what a server presents.
    pub der: Vec<u8>,
}

impl TestCa {
    /// A new CA named `name`.
    ///
    /// # Panics
    ///
    /// When rcgen cannot make a key or sign (a bug, not a test outcome).
    pub fn new(name: &str) -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA parameters");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate().expect("CA key");
        Self { issuer: CertifiedIssuer::self_signed(params, key).expect("self-signed CA") }
    }

    /// The CA certificate, as PEM (TLS_CA_FILE).
    pub fn pem(&self) -> String {
        self.issuer.pem()
    }

    /// A server certificate for `localhost` and `127.0.0.1`, its subject named `name`.
    ///
    /// # Panics
    ///
    /// As [`TestCa::new`].
    pub fn issue(&self, name: &str) -> Leaf {
        let mut params = CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
            .expect("leaf parameters");
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let key = KeyPair::generate().expect("leaf key");
        let cert = params.signed_by(&key, &*self.issuer).expect("leaf signed by the CA");
        Leaf { cert_pem: cert.pem(), key_pem: key.serialize_pem(), der: cert.der().to_vec() }
    }

    /// Write the CA (`ca.pem`) and a leaf named `name` (`cert.pem`, `key.pem`) into `dir`;
    /// returns the leaf and the three paths.
    ///
    /// # Panics
    ///
    /// When a file cannot be written.
    pub fn write(&self, dir: &Path, name: &str) -> (Leaf, TlsFiles) {
        let files = TlsFiles { ca: dir.join("ca.pem"), cert: dir.join("cert.pem"), key: dir.join("key.pem") };
        std::fs::write(&files.ca, self.pem()).expect("write ca.pem");
        let leaf = self.issue(name);
        files.replace(&leaf);
        (leaf, files)
    }
}

/// Where a test's certificate files are.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// TLS_CA_FILE.
    pub ca: PathBuf,
    /// TLS_CERT_FILE.
    pub cert: PathBuf,
    /// TLS_KEY_FILE.
    pub key: PathBuf,
}

impl TlsFiles {
    /// Put `leaf` in the certificate and key files (each written whole, then renamed over
    /// the old one, as a secret mount or certbot swaps them).
    ///
    /// # Panics
    ///
    /// When a file cannot be written.
    pub fn replace(&self, leaf: &Leaf) {
        for (path, pem) in [(&self.key, &leaf.key_pem), (&self.cert, &leaf.cert_pem)] {
            let tmp = path.with_extension("new");
            std::fs::write(&tmp, pem).expect("write the new PEM");
            std::fs::rename(&tmp, path).expect("swap the PEM in");
        }
    }
}
