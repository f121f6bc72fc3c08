//! Operation generators and sequential models.
