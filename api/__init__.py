"""The HTTP API Totara calls (contract §1-2): a Falcon app built by ``api.app.create_app``."""
