"""Code-generation targets: each turns a derivation into a view model for its templates."""
