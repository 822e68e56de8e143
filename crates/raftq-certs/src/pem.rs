//! PEM text in and out.

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;

use crate::CertError;

/// A certificate and its private key, as PEM text: what `raftq cert`
/// writes to `<name>.pem` and `<name>-key.pem`.
#[derive(Clone, PartialEq, Eq)]
pub struct Pem {
    pub cert_pem: String,
    /// PKCS#8 ("BEGIN PRIVATE KEY").
    pub key_pem: String,
}

// Keeps private keys out of logs and panic messages.
impl std::fmt::Debug for Pem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pem")
            .field("cert_pem", &self.cert_pem)
            .field("key_pem", &"<redacted>")
            .finish()
    }
}

/// The DER of every certificate in a PEM bundle, in order (other sections,
/// such as keys, are skipped); an error when there is none.
pub fn pem_to_der_chain(pem: &str) -> Result<Vec<Vec<u8>>, CertError> {
    let chain = CertificateDer::pem_slice_iter(pem.as_bytes())
        .map(|cert| cert.map(|c| c.as_ref().to_vec()))
        .collect::<Result<Vec<_>, _>>()?;
    if chain.is_empty() {
        return Err(CertError::NoCertificate);
    }
    Ok(chain)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bundle_yields_its_certificates_in_order() {
        let ca = crate::create_ca("bundle test", 1).unwrap();
        let node = crate::create_node(&ca, 1, &[], 1).unwrap();
        let bundle = format!("{}{}{}", node.cert_pem, node.key_pem, ca.cert_pem);
        let chain = pem_to_der_chain(&bundle).unwrap();
        assert_eq!(chain.len(), 2);
        assert_eq!(crate::node_id_of(&chain[0]), Some(1));
        assert_eq!(chain[1], pem_to_der_chain(&ca.cert_pem).unwrap()[0]);
    }

    #[test]
    fn no_certificate_is_an_error() {
        assert!(matches!(
            pem_to_der_chain(""),
            Err(CertError::NoCertificate)
        ));
        let key_only = crate::create_ca("key only", 1).unwrap().key_pem;
        assert!(matches!(
            pem_to_der_chain(&key_only),
            Err(CertError::NoCertificate)
        ));
        let broken = "-----BEGIN CERTIFICATE-----\n!!!\n-----END CERTIFICATE-----\n";
        assert!(matches!(pem_to_der_chain(broken), Err(CertError::Pem(_))));
    }

    #[test]
    fn keys_stay_out_of_debug_output() {
        let ca = crate::create_ca("debug test", 1).unwrap();
        assert!(!format!("{ca:?}").contains("PRIVATE KEY"));
    }
}
