// Command kubevirt-crds prints, as YAML, the CustomResourceDefinitions that KubeVirt's virt-operator
// installs, produced by virt-operator's own generator (kubevirt.io/kubevirt
// pkg/virt-operator/resource/generate/components) at the module version kovc assets build pins.
// KubeVirt ships no static CRD YAML; this is how its operator makes them. With the argument
// "virt-api-webhooks NAMESPACE" it prints virt-api's ValidatingWebhookConfiguration instead, as the
// operator generates it for that install namespace.
package main

import (
	"fmt"
	"os"

	extv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"sigs.k8s.io/yaml"

	"kubevirt.io/kubevirt/pkg/virt-operator/resource/generate/components"
)

func main() {
	if len(os.Args) == 3 && os.Args[1] == "virt-api-webhooks" {
		vwc := components.NewVirtAPIValidatingWebhookConfiguration(os.Args[2])
		vwc.TypeMeta.APIVersion = "admissionregistration.k8s.io/v1"
		vwc.TypeMeta.Kind = "ValidatingWebhookConfiguration"
		out, err := yaml.Marshal(vwc)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		fmt.Printf("---\n%s", out)
		return
	}
	generators := []func() (*extv1.CustomResourceDefinition, error){
		components.NewKubeVirtCrd,
		components.NewVirtualMachineCrd,
		components.NewVirtualMachineInstanceCrd,
		components.NewVirtualMachineInstanceMigrationCrd,
		components.NewReplicaSetCrd,
		components.NewPresetCrd,
		components.NewVirtualMachinePoolCrd,
		components.NewVirtualMachineSnapshotCrd,
		components.NewVirtualMachineSnapshotContentCrd,
		components.NewVirtualMachineRestoreCrd,
		components.NewVirtualMachineExportCrd,
		components.NewVirtualMachineInstancetypeCrd,
		components.NewVirtualMachineClusterInstancetypeCrd,
		components.NewVirtualMachinePreferenceCrd,
		components.NewVirtualMachineClusterPreferenceCrd,
		components.NewMigrationPolicyCrd,
		components.NewVirtualMachineCloneCrd,
	}
	for _, generate := range generators {
		crd, err := generate()
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		crd.TypeMeta.APIVersion = "apiextensions.k8s.io/v1"
		crd.TypeMeta.Kind = "CustomResourceDefinition"
		out, err := yaml.Marshal(crd)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		fmt.Printf("---\n%s", out)
	}
}
