//! OpenAI-compatible chat completions.
use crate::cancel::CancelToken;
use crate::config::ResolvedModel;
use crate::model::{Delta, Model, ModelError, ModelRequest, ModelResponse};
pub struct OpenAiModel {
    id: String,
}
impl OpenAiModel {
    pub fn new(r: &ResolvedModel) -> Self {
        OpenAiModel {
            id: r.model.clone(),
        }
    }
}
impl Model for OpenAiModel {
    fn id(&self) -> &str {
        &self.id
    }
    fn provider(&self) -> &str {
        "OpenAI"
    }
    fn invoke(
        &self,
        _r: &ModelRequest<'_>,
        _c: &CancelToken,
        _d: &mut dyn FnMut(&Delta),
    ) -> Result<ModelResponse, ModelError> {
        Err(ModelError::Protocol("stand-in".into()))
    }
}
