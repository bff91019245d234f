"""Request and response shapes of each protocol, for validation where used and for the OpenAPI document."""
