#include "transports/iface/registry.h"

namespace loom::transport {

Expected<std::unique_ptr<Transport>> createTransport(const std::string& name, const TransportOptions& options) {
  if (name == "tcp") return makeTcpTransport(options);
  if (name == "local") return makeLocalTransport(options);
  return makeError(loomInvalidArgument, "unknown transport '{}' (LOOM_TRANSPORT): use 'tcp' or 'local'", name);
}

}  // namespace loom::transport
