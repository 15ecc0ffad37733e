"""What an org admin configures for appraisals: detector engine, devices, rates, policy."""
