// ReelCurl: see Package.swift for its role.
