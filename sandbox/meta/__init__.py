"""The sandbox Meta Lead Ads: the Lead node Graph API serves and the leadgen webhook Meta sends."""
