"""The sandbox's generic REST CRM at /sandbox/rest/: leads by ID and email, batches, switchable
answer shapes and auth, for testing the REST recipe connector.

Fixed credentials (sandbox/rest/auth.py), accepted only under the `auth` switch that names them:
  bearer   Authorization: Bearer sandbox-rest-token
  header   X-Api-Key: sandbox-rest-key (or Authorization: Token sandbox-rest-key)
  basic    user sandbox-rest-user, password sandbox-rest-password
  oauth_*  POST /sandbox/rest/oauth/token, client sandbox-rest-client / sandbox-rest-secret, and for
           the refresh grant refresh_token=sandbox-rest-refresh; then Authorization: Bearer <token>
"""
