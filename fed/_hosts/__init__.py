"""Where this party's proxies run: in the driver process, or as Ray actors."""
