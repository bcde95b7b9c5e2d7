# Types this module's `CustomerState` arguments as the C struct (lifecycle/state.pxd).
from lifecycle.state cimport CustomerState
