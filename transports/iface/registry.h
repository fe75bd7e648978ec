// Factories of the built-in transports, registered by name in registry.cc.
#pragma once

#include "transports/iface/transport.h"

namespace loom::transport {

std::unique_ptr<Transport> makeTcpTransport(const TransportOptions& options);    // transports/tcp
std::unique_ptr<Transport> makeLocalTransport(const TransportOptions& options);  // transports/local

}  // namespace loom::transport
