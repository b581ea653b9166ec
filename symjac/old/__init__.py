"""The first pipeline (catalog objects, derivation, codegen, printers), kept while the
function-language pipeline replaces it stage by stage."""
