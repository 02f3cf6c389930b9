"""Demo data: a provider, its SME tenants, their telemetry and the incidents hidden in it."""
