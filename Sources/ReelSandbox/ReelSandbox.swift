// ReelSandbox: see Package.swift for its role.
