//! Form bodies: `application/x-www-form-urlencoded` and `multipart/form-data`.
