// HTTP: our HTTP/1.1 server on POSIX sockets and Dispatch (issue 3). Placeholder until it lands.
