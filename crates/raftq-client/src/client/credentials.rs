//! A bearer token on every request, for clusters that authenticate users by
//! token (`authorization: Bearer ...`). The token is never logged.

use tonic::metadata::MetadataValue;
use tonic::service::Interceptor;

#[derive(Clone, Default)]
pub(crate) struct Credentials {
    bearer: Option<MetadataValue<tonic::metadata::Ascii>>,
}

impl Credentials {
    pub(crate) fn new(token: Option<&str>) -> Result<Self, crate::Error> {
        let bearer = match token {
            None => None,
            Some(t) => {
                let mut value: MetadataValue<_> = format!("Bearer {t}").parse().map_err(|_| {
                    crate::Error::InvalidArgument(
                        "the token must be printable ASCII without line breaks".into(),
                    )
                })?;
                value.set_sensitive(true);
                Some(value)
            }
        };
        Ok(Credentials { bearer })
    }
}

impl Interceptor for Credentials {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(bearer) = &self.bearer {
            request
                .metadata_mut()
                .insert("authorization", bearer.clone());
        }
        Ok(request)
    }
}
