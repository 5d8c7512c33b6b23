//! The default models, compiled in. `build.rs` checks each file's SHA-256 digest while
//! building, so at run time they are read with `format::read_trusted` (no hashing per request).

use std::borrow::Cow;

use crate::ModelEntry;

static CNN: &[u8] = include_bytes!("../../models/mnist-cnn.mdm");
static MLP: &[u8] = include_bytes!("../../models/mnist-mlp.mdm");

pub(crate) fn entries() -> Vec<ModelEntry> {
    let e = |name: &str, bytes: &'static [u8]| ModelEntry {
        name: name.to_string(),
        version: "1".to_string(),
        bytes: Cow::Borrowed(bytes),
        trusted: true,
    };
    vec![e("mnist-cnn", CNN), e("mnist-mlp", MLP)]
}
