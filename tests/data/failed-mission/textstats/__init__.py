"""textstats: small word statistics."""
