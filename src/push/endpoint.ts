/** A vessel as the SSH layer sees it: where to connect, how to log in, how messages name it. */
import type { VesselSettings } from '../settings/load.js';
import type { Endpoint } from '../ssh/connect.js';

export function vesselEndpoint(vessel: VesselSettings): Endpoint {
  return { ...vessel, label: `vessel ${vessel.name}`, identitySetting: `[Vessel ${vessel.name}] IdentityFile`, hostKeySetting: 'HostKey =' };
}
