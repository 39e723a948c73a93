//! ddsd domain and workflows.
