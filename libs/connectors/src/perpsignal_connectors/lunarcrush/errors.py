"""LunarCrush errors: HTTP status (shared); 401 bad key, 429 plan limit ("slow down")."""
