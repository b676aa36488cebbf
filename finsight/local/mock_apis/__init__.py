"""Local mock of the four payment APIs (Stripe-, PayPal-, Adyen-like and FX rates), served on 127.0.0.1 only.

``create_app`` builds the Flask app; ``python -m finsight.local.mock_apis`` serves it (see ``__main__``).
"""

from finsight.local.mock_apis.app import create_app

CREDENTIALS_ENV = "FINSIGHT_MOCK_API_CREDENTIALS"

__all__ = ["CREDENTIALS_ENV", "create_app"]
