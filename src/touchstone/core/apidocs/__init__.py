"""The API documentation pages (Swagger UI, ReDoc), served offline from this package."""
