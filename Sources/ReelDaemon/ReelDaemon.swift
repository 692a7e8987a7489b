// ReelDaemon: the Services composed by reeld.
