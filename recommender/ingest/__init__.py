"""Reading a Totara export: signed downloads, CSV parsing, validation into arrays."""
