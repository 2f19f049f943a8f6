"""The reliability and security suite: real processes, faults and hostile input; each scenario prints figures."""
