"""Data files shipped inside the package: the catalog, icons, style sheets, translations."""
