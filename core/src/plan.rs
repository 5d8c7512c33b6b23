//! TODO(kernels owner): the inference plan.
pub struct Plan;
