// ReelProtocol: see Package.swift for its role.
