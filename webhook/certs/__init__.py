"""All certificate code: the CA and serving bundle, its Secret, CA injection into the webhook configurations, TLS."""
